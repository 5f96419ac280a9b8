"""Page objects of the portals dealerbot drives: one module per portal, one class per screen.

Each module uses only the public API (:mod:`dealerbot.api`) and selector names from
``selectors/<portal>.yaml``, never raw CSS. The shipped OEM portal (``oem.py``) and DMS
(``dms.py``) are the examples to copy: a dealership's own portal is a third module here (or in
``portals/`` of its project folder), found the way bots are found.
"""
