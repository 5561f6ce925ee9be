import LDMCore
print(BLAS.coreName)
