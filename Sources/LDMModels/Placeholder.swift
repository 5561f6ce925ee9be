// LDMModels
