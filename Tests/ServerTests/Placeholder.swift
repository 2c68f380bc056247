// Tests of Server. (Placeholder until its first test lands.)
