"""The bundled SYNTHETIC demo corpus (ReDSM5 format) and its seeded generator."""
