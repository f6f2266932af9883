"""Emit stage: the generated sources of a build, as {relative path: text}.

Nothing is written here; the build stage writes the files (atomically) and
compiles them. That keeps emission pure, deterministic and golden-file testable.
"""
