"""The sandbox's mechanics, used by `isolation` (the grader's side) and `child_side` (the
submission's side): the wire format and its bounded decoding (`wire`), Landlock and capabilities
(`landlock`), per-test control groups (`cgroups`), and the jail around an authoritative run
(`jail`). `autograder/SECURITY.md` says what each one stops."""
