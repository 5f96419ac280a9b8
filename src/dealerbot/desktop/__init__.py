"""Driving desktop (client/server) applications through the keyboard and the screen.

* :mod:`dealerbot.desktop.spec`: a desktop client's screens in YAML (``selectors/<portal>.yaml``
  with ``kind: desktop``): window titles, the tab order of forms, hotkeys, image anchors, masks.
* :mod:`dealerbot.desktop.windows`: finding and focusing windows (xdotool on Linux, pygetwindow
  on Windows).
* :mod:`dealerbot.desktop.driver`: the driver page objects use: focus checked before every
  burst of keys, fields typed through the tab order, non-ASCII text through the clipboard (the
  user's clipboard restored), copied text read back, screenshots with personal regions masked.

pyautogui is imported only when a driver starts (it needs a display; on Linux ``DISPLAY``).
"""
