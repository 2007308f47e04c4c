"""The daily report: its content (``content``), SMTP delivery (``mailer``), the service that
builds and sends it (``service``) and the scheduler that sends it once a day across servers."""
