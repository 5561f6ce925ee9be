// The restricted unpickler's allow-list: the globals a torch.save state dict may name (the
// names torch/_weights_only_unpickler.py allows for tensors and plain containers), resolved to
// Swift cases — never to anything dynamic — plus the storage types and pickle opcodes.

enum TorchStorageType: Equatable {
    /// `torch.FloatStorage` and friends: elements of this type.
    case typed(SafeTensorsDType)
    /// `torch.storage.UntypedStorage`: bytes, typed by the `_rebuild_tensor_v3` that views them.
    case untyped
    /// A storage class torch allows but this reader cannot convert (complex, quantized).
    case unreadable(String)
}

/// A global the restricted unpickler accepts: each a fixed case, resolved from a fixed table.
enum PickleGlobal: Equatable, CustomStringConvertible {
    case orderedDict, counter
    case rebuildTensor, rebuildTensorV2, rebuildTensorV3
    case rebuildParameter, rebuildParameterWithState, rebuildFromTypeV2
    case tensorType, parameterType
    case storageType(name: String, TorchStorageType)
    /// A `torch.<dtype>` object; nil when it has no safetensors equivalent (complex, quantized, …).
    case dtype(name: String, SafeTensorsDType?)
    case size, device
    case codecsEncode, bytearray, set, complex

    var description: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .counter: return "collections.Counter"
        case .rebuildTensor: return "torch._utils._rebuild_tensor"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensorV3: return "torch._utils._rebuild_tensor_v3"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case .rebuildFromTypeV2: return "torch._tensor._rebuild_from_type_v2"
        case .tensorType: return "torch.Tensor"
        case .parameterType: return "torch.nn.parameter.Parameter"
        case let .storageType(name, _): return name
        case let .dtype(name, _): return name
        case .size: return "torch.Size"
        case .device: return "torch.device"
        case .codecsEncode: return "_codecs.encode"
        case .bytearray: return "builtins.bytearray"
        case .set: return "builtins.set"
        case .complex: return "builtins.complex"
        }
    }

    /// What a GLOBAL `module.name` resolves to.
    enum Resolution: Equatable {
        case allowed(PickleGlobal)
        /// Allowed by torch.load(weights_only=True) but not read here; `what` says what it is for.
        case unsupported(what: String)
        case forbidden
    }

    /// The allow-list: torch's `_get_allowed_globals()` (torch 2.x), every name a fixed case.
    static func resolve(module rawModule: String, name: String) -> Resolution {
        // Python 2 pickles name the builtins module `__builtin__` (torch's IMPORT_MAPPING).
        let module = rawModule == "__builtin__" ? "builtins" : rawModule
        switch (module, name) {
        case ("collections", "OrderedDict"): return .allowed(.orderedDict)
        case ("collections", "Counter"): return .allowed(.counter)
        case ("torch._utils", "_rebuild_tensor"): return .allowed(.rebuildTensor)
        case ("torch._utils", "_rebuild_tensor_v2"): return .allowed(.rebuildTensorV2)
        case ("torch._utils", "_rebuild_tensor_v3"): return .allowed(.rebuildTensorV3)
        case ("torch._utils", "_rebuild_parameter"): return .allowed(.rebuildParameter)
        case ("torch._utils", "_rebuild_parameter_with_state"): return .allowed(.rebuildParameterWithState)
        case ("torch._tensor", "_rebuild_from_type_v2"): return .allowed(.rebuildFromTypeV2)
        case ("torch", "Tensor"): return .allowed(.tensorType)
        case ("torch.nn.parameter", "Parameter"): return .allowed(.parameterType)
        case ("torch", "Size"): return .allowed(.size)
        case ("torch", "device"): return .allowed(.device)
        case ("torch.storage", "UntypedStorage"): return .allowed(.storageType(name: "torch.storage.UntypedStorage", .untyped))
        case ("_codecs", "encode"): return .allowed(.codecsEncode)
        case ("builtins", "bytearray"): return .allowed(.bytearray)
        case ("builtins", "set"): return .allowed(.set)
        case ("builtins", "complex"): return .allowed(.complex)

        case ("torch._utils", "_rebuild_qtensor"), ("torch", "per_tensor_affine"), ("torch", "per_tensor_symmetric"),
             ("torch", "per_channel_affine"), ("torch", "per_channel_symmetric"),
             ("torch", "per_channel_affine_float_qparams"):
            return .unsupported(what: "quantized tensors")
        case ("torch._utils", "_rebuild_sparse_tensor"), ("torch.serialization", "_get_layout"):
            return .unsupported(what: "sparse tensors")
        case ("torch._utils", "_rebuild_meta_tensor_no_storage"):
            return .unsupported(what: "meta tensors, which hold no values")
        case ("torch._utils", "_rebuild_wrapper_subclass"):
            return .unsupported(what: "tensor subclasses")
        case ("torch._utils", "_rebuild_device_tensor_from_numpy"), ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"):
            return .unsupported(what: "device tensors without a storage")
        case ("torch.storage", "TypedStorage"):
            return .unsupported(what: "storages pickled as objects")
        default:
            break
        }
        let full = module + "." + name
        if module == "torch" || module == "torch.cuda", name.hasSuffix("Storage") {
            let element = String(name.dropLast("Storage".count))
            if let dtype = storageElements[element] { return .allowed(.storageType(name: full, .typed(dtype))) }
            let unreadable = module == "torch" ? unreadableStorages : ["ComplexFloat", "ComplexDouble"]
            if unreadable.contains(element) { return .allowed(.storageType(name: full, .unreadable(full))) }
        }
        if module == "torch" {
            if let dtype = dtypes[name] { return .allowed(.dtype(name: full, dtype)) }
            if unreadableDTypes.contains(name) { return .allowed(.dtype(name: full, nil)) }
        }
        if ["torch", "torch.cuda", "torch.sparse", "torch.cuda.sparse"].contains(module), name.hasSuffix("Tensor"),
           let element = storageElements[String(name.dropLast("Tensor".count))],
           !(module.hasSuffix("sparse") && element == .bool) {
            return .unsupported(what: "legacy typed-tensor constructors")
        }
        return .forbidden
    }

    /// `torch.<X>Storage` → element type (torch.storage's `_dtype_to_storage_type_map`).
    private static let storageElements: [String: SafeTensorsDType] = [
        "Float": .f32, "Half": .f16, "BFloat16": .bf16, "Double": .f64, "Long": .i64, "Int": .i32,
        "Short": .i16, "Char": .i8, "Byte": .u8, "Bool": .bool,
    ]
    private static let unreadableStorages: Set<String> = [
        "ComplexFloat", "ComplexDouble", "QInt8", "QInt32", "QUInt8", "QUInt4x2", "QUInt2x4",
    ]
    /// `torch.<dtype>` names with a safetensors element type.
    private static let dtypes: [String: SafeTensorsDType] = [
        "float32": .f32, "float16": .f16, "bfloat16": .bf16, "float64": .f64, "int64": .i64, "int32": .i32,
        "int16": .i16, "int8": .i8, "uint8": .u8, "bool": .bool, "float8_e4m3fn": .f8E4M3,
        "float8_e5m2": .f8E5M2, "uint16": .u16, "uint32": .u32, "uint64": .u64,
    ]
    /// The other dtype names torch allows as values.
    private static let unreadableDTypes: Set<String> = [
        "bcomplex32", "complex32", "complex64", "complex128", "bits8", "bits16", "bits1x8", "bits2x4",
        "bits4x2", "float4_e2m1fn_x2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
        "qint8", "qint32", "quint8", "quint2x4", "quint4x2",
        "int1", "int2", "int3", "int4", "int5", "int6", "int7",
        "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
    ]
}

/// A storage: one `data/<key>` record, as its persistent id describes it.

enum PickleOpcode {
    static func name(_ op: UInt8) -> String? {
        switch op {
        case 0x28: return "MARK"; case 0x2E: return "STOP"; case 0x30: return "POP"; case 0x31: return "POP_MARK"
        case 0x32: return "DUP"; case 0x46: return "FLOAT"; case 0x49: return "INT"; case 0x4A: return "BININT"
        case 0x4B: return "BININT1"; case 0x4C: return "LONG"; case 0x4D: return "BININT2"; case 0x4E: return "NONE"
        case 0x50: return "PERSID"; case 0x51: return "BINPERSID"; case 0x52: return "REDUCE"; case 0x53: return "STRING"
        case 0x54: return "BINSTRING"; case 0x55: return "SHORT_BINSTRING"; case 0x56: return "UNICODE"
        case 0x58: return "BINUNICODE"; case 0x61: return "APPEND"; case 0x62: return "BUILD"; case 0x63: return "GLOBAL"
        case 0x64: return "DICT"; case 0x7D: return "EMPTY_DICT"; case 0x65: return "APPENDS"; case 0x67: return "GET"
        case 0x68: return "BINGET"; case 0x69: return "INST"; case 0x6A: return "LONG_BINGET"; case 0x6C: return "LIST"
        case 0x5D: return "EMPTY_LIST"; case 0x6F: return "OBJ"; case 0x70: return "PUT"; case 0x71: return "BINPUT"
        case 0x72: return "LONG_BINPUT"; case 0x73: return "SETITEM"; case 0x74: return "TUPLE"; case 0x29: return "EMPTY_TUPLE"
        case 0x75: return "SETITEMS"; case 0x47: return "BINFLOAT"; case 0x80: return "PROTO"; case 0x81: return "NEWOBJ"
        case 0x82: return "EXT1"; case 0x83: return "EXT2"; case 0x84: return "EXT4"; case 0x85: return "TUPLE1"
        case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3"; case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE"
        case 0x8A: return "LONG1"; case 0x8B: return "LONG4"; case 0x42: return "BINBYTES"; case 0x43: return "SHORT_BINBYTES"
        case 0x8C: return "SHORT_BINUNICODE"; case 0x8D: return "BINUNICODE8"; case 0x8E: return "BINBYTES8"
        case 0x8F: return "EMPTY_SET"; case 0x90: return "ADDITEMS"; case 0x91: return "FROZENSET"; case 0x92: return "NEWOBJ_EX"
        case 0x93: return "STACK_GLOBAL"; case 0x94: return "MEMOIZE"; case 0x95: return "FRAME"; case 0x96: return "BYTEARRAY8"
        case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER"
        default: return nil
        }
    }
}
