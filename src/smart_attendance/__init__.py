"""Smart Attendance: self-hosted face-recognition attendance."""

__version__ = "0.1.0"
