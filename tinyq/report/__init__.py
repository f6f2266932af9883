"""Report: what a build and a run found. builddir (the typed build report and the build folder's files),
measure (a device's run turned into figures and checked against the host), plots."""
