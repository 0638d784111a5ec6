"""Collection: feeds, editorial entries and directories become normalised, sanitised rows."""
