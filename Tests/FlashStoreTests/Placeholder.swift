// Tests of FlashStore. (Placeholder until its first test lands.)
