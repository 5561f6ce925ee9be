// LDMBench
