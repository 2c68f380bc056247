// The Server module: see README.md for what it holds. (Placeholder until its first source lands.)
