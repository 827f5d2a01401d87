"""Control path: which streams go on which connection, and keeping those connections alive."""
