"""Page objects: one class per portal screen, holding that screen's actions and reads.

They use selector names from ``selectors/<portal>.yaml`` only, never raw CSS. Bots orchestrate
them; they know nothing of the store or the pipeline.
"""
