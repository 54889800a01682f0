"""selfiter plugin: curve_fit."""
