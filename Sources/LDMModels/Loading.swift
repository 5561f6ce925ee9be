// Loading weights into a module tree by diffusers' key names, and saving them back.
// A missing, unexpected or misshaped tensor is an error naming it (and both shapes).

import Foundation
import LDMCore
import LDMIO

extension Module {
    /// Fills every parameter from `file`, converting F16/BF16 to float32.
    /// Keys for which `ignore` returns true (buffers such as `position_ids`) may be present without a parameter.
    /// When the file's keys lack `optionalPrefix` (transformers 5 saves CLIP without `text_model.`),
    /// they are matched without it.
    public func load(from file: any TensorSource, component: String, optionalPrefix: String = "text_model.",
                     ignore: (String) -> Bool = { $0.hasSuffix("position_ids") }) throws {
        let full = namedParameters()
        let stripped = full.allSatisfy({ $0.0.hasPrefix(optionalPrefix) })
            && !file.names.contains(where: { $0.hasPrefix(optionalPrefix) })
        let params = stripped ? full.map { (String($0.0.dropFirst(optionalPrefix.count)), $0.1) } : full
        let wanted = Set(params.map(\.0))
        for name in file.names where !wanted.contains(name) && !ignore(name) {
            throw ModelError.unexpectedTensor(component: component, name: name, shape: (try? file.shape(of: name)) ?? [])
        }
        for (name, p) in params {
            guard file.contains(name) else { throw ModelError.missingTensor(component: component, name: name, shape: p.shape) }
            let shape = try file.shape(of: name)
            guard shape == p.shape else {
                throw ModelError.shapeMismatch(component: component, name: name, expected: p.shape, found: shape)
            }
            try file.copyFloats(name, into: p.value.data, count: p.value.count)
        }
    }

    /// Loads `diffusion_pytorch_model.safetensors` or `model.safetensors` from a component folder.
    public func load(folder: URL, component: String) throws {
        let fm = FileManager.default
        let candidates = ["diffusion_pytorch_model.safetensors", "model.safetensors"]
        guard let file = candidates.map({ folder.appendingPathComponent($0) }).first(where: { fm.fileExists(atPath: $0.path) }) else {
            throw ModelError.missingFile(folder.appendingPathComponent(candidates[0]).path)
        }
        try load(from: SafeTensorsFile(path: file.path), component: component)
    }

    /// Writes every parameter to a safetensors file (atomically), as F32, F16 or BF16.
    public func save(to url: URL, dtype: SafeTensorsDType = .f32, metadata: [String: String] = ["format": "pt"]) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (name, p) in namedParameters() {
            try writer.add(name, dtype: dtype, shape: p.shape,
                           floats: UnsafeBufferPointer(start: p.value.data, count: p.value.count))
        }
        try writer.write(to: url.path)
    }
}
