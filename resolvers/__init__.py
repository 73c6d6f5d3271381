"""Query and mutation logic: validates input, calls repositories, owns transactions."""
