"""Students and their photos: enrolment from ``dataset/<student>/*.jpg`` into the gallery the
server recognises, the students registry (added, changed, renamed and given photos through the
API), and the watcher that keeps a running server's gallery up to date with other processes."""
