"""The register: punctuality, marks (one per student per day), intruder photos, the original's
CSV files, and the ``ScanService`` that turns a scan into marks."""
