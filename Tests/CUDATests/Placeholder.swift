// Tests of CUDA. (Placeholder until its first test lands.)
