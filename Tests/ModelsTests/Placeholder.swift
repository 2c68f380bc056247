// Tests of Models. (Placeholder until its first test lands.)
