// Tests of Engine. (Placeholder until its first test lands.)
