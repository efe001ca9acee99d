"""Benchmarks (run as scripts) and the workbook engines they and the writer tests compare with (``workbooks``)."""
