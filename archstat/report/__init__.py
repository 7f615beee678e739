"""Reports: formatters (table, Markdown, CSV, JSON, HTML); plots come later, lazily imported."""
