"""The ground every part stands on: errors, logs, time, i18n, sd_notify, ports, private files.

Nothing here imports another doorwatch package; every other package may import this one.
"""
