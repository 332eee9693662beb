"""A user's script that never ends: doctor must stop it at --timeout and leave nothing behind."""

while True:
    pass
