// TensorSource.swift — what a model loader needs of a file of named tensors, whatever its format:
// safetensors, a PyTorch `.ckpt` read by the restricted unpickler, or a view that renames another
// source's tensors (a single-file checkpoint seen under diffusers' names).

/// A read-only collection of named tensors whose values can be read as Float.
public protocol TensorSource: AnyObject {
    /// Where the tensors come from (used in error messages).
    var path: String { get }
    /// Every tensor name, in a stable order.
    var names: [String] { get }
    /// Whether a tensor of that name exists.
    func contains(_ name: String) -> Bool
    /// The shape of tensor `name` (outermost first).
    func shape(of name: String) throws -> [Int]
    /// The element type of tensor `name`, as safetensors names it.
    func dtype(of name: String) throws -> SafeTensorsDType
    /// Converts the tensor's values to Float into `destination`, which holds exactly product(shape) elements.
    func copyFloats(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws
}

/// A tensor as stored: element type, shape and little-endian C-order bytes.
public struct StoredTensor: Sendable, Equatable {
    public var dtype: SafeTensorsDType
    public var shape: [Int]
    public var bytes: [UInt8]
    public init(dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) { self.dtype = dtype; self.shape = shape; self.bytes = bytes }
}

extension TensorSource {
    /// The tensor as stored, for copying it to another file unchanged. Sources that cannot give
    /// their stored bytes give float32 values.
    public func stored(_ name: String) throws -> StoredTensor {
        if let file = self as? SafeTensorsFile {
            let info = try file.info(name)
            return StoredTensor(dtype: info.dtype, shape: info.shape, bytes: try file.rawBytes(name))
        }
        let values = try floatArray(name)
        return StoredTensor(dtype: .f32, shape: try shape(of: name), bytes: values.withUnsafeBytes { Array($0) })
    }

    /// The tensor's values as Float, in C order.
    public func floatArray(_ name: String) throws -> [Float] {
        let n = try shape(of: name).reduce(1, *)
        return try [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
            if let base = buffer.baseAddress { try copyFloats(name, into: base, count: n) }
            initialized = n
        }
    }
}

extension SafeTensorsFile: TensorSource {
    public func shape(of name: String) throws -> [Int] { try info(name).shape }
    public func dtype(of name: String) throws -> SafeTensorsDType { try info(name).dtype }
}
