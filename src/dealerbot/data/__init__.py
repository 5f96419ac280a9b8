"""Record types and the rules a scraped record goes through: validation, the processing pipeline,
the data dictionary, the mapping to the DMS's form text, a run's input file."""
