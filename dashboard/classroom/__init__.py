"""Class mode's screens: the join form, the account box, the roster and the teacher's class board."""
