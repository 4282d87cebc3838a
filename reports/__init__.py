"""reports: renders finished tables — the review-meeting PDF, Excel and CSV lists, charts and the
drafted memo. It never recomputes a score."""
