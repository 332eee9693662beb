"""Rendering: one table model and its formats, the HTML report and the published write-up."""
