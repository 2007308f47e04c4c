"""Privacy: encryption at rest, consent's consequences, erasure, subject access, retention, the
audit log (docs/privacy.md)."""
