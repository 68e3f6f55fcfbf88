"""The course's tools, beside the grading engine: `course release` (`release`), `course sync`
(`sync`), the term's calendar (`schedule`), the datasets (`data`), `course train` / `course
sample` (`capstone`) and `course gradebook` (`gradebook`). None of them runs submission code."""
