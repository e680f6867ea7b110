"""Where attachments' bytes live: a folder on this machine, or an S3-compatible bucket."""
