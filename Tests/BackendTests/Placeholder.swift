// Tests of Backend. (Placeholder until its first test lands.)
