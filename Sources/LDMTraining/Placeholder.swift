// LDMTraining
