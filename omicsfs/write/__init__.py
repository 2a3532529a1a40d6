"""The write path: new files in a sequence store become read sets through multipart uploads."""
