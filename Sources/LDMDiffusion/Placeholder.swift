// LDMDiffusion
