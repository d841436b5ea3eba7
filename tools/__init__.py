"""Developer tools: the local-cloud description, a director-like CPI runner, the demo.
Not part of the installed CPI."""
