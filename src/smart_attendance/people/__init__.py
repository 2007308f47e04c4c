"""Students and their photos: enrolment from ``dataset/<student>/*.jpg`` into the gallery the
server recognises."""
