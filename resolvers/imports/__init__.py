"""Bulk import of leads: the upload (``jobs.receive``), the jobs' API fields, and the runner
that works through the files in the background (``runner.ImportRunner``)."""
