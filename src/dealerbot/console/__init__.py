"""The operator console: a local web app to start bots, watch them, see what went wrong, download
the review workbook and hand back a reviewed one (``dealerbot console``; ``dealerbot serve``
runs it together with the scheduler)."""
