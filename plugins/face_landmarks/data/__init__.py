"""300-W data: the ``.pts`` format, the official folder layout, face frames and loading."""
