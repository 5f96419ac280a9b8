"""The review workbook staff approve in Excel: what is exported, the review sheets' round trip,
the streaming workbook writer."""
