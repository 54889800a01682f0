"""selfiter plugin: face_landmarks."""
