"""What both transports share, so that neither imports the other: the one rule for "is this
account still allowed in" (``standing``), the principal and its claims snapshot
(``principals``), and the cookie writer (``cookies``)."""
