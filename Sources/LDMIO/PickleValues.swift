// PickleValues.swift — what the restricted unpickler (Unpickler.swift) builds: its bounds, the
// values, the containers' arena (values refer to containers by index, never own a deep tree), and
// the storages and strided tensor views a PyTorch checkpoint's pickle describes.

/// Bounds on what a pickle may build; past them the file is refused.
enum UnpicklerLimits {
    static let stackDepth = 1_000_000
    static let marks = 1_000_000
    static let memoEntries = 10_000_000
    static let containers = 10_000_000
    /// Longest single string or bytes value.
    static let stringBytes = 64 << 20
    /// All string and bytes values together (a memoised string can be re-encoded many times).
    static let totalStringBytes = 1 << 30
    static let tensorRank = 64
    static let globalNameBytes = 1024
}

/// A value on the unpickler's stack. Containers are indexes into `PickleArena`.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer (LONG1/LONG4) too wide for Int: kept only as "some int".
    case bigInt
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(Int)
    case list(Int)
    case dict(Int)
    /// A set or frozenset; its items are not kept.
    case set
    case global(PickleGlobal)
    case storage(Int)
    case tensor(Int)
    /// An allowed value this reader does not model (`torch.device(...)`, a complex number).
    case object(String)

    /// What the value is, for error messages.
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int, .bigInt: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        case .set: return "a set"
        case let .global(g): return "the global \(g)"
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        case let .object(name): return "a \(name)"
        }
    }
}

/// A dict (or OrderedDict, Counter) in insertion order; a later SETITEM of an equal key replaces.
struct PickleDict {
    var keys: [PickleValue] = []
    var values: [PickleValue] = []
    private var slots: [Key: Int] = [:]

    /// The hashable keys Python dedupes (True == 1 as in Python); other keys are only appended.
    private enum Key: Hashable {
        case none, int(Int), string(String), bytes([UInt8])
        init?(_ v: PickleValue) {
            switch v {
            case .none: self = .none
            case let .bool(b): self = .int(b ? 1 : 0)
            case let .int(i): self = .int(i)
            case let .string(s): self = .string(s)
            case let .bytes(b): self = .bytes(b)
            default: return nil
            }
        }
    }

    mutating func set(_ key: PickleValue, _ value: PickleValue) {
        if let k = Key(key), let i = slots[k] {
            values[i] = value
            return
        }
        if let k = Key(key) { slots[k] = keys.count }
        keys.append(key)
        values.append(value)
    }

    subscript(string key: String) -> PickleValue? {
        slots[.string(key)].map { values[$0] }
    }
}

/// The containers a pickle built, referred to by the indexes in `PickleValue`.
struct PickleArena {
    var tuples: [[PickleValue]] = []
    var lists: [[PickleValue]] = []
    var dicts: [PickleDict] = []
    var count: Int { tuples.count + lists.count + dicts.count }
}

/// How a storage's bytes are typed, from the storage class named in its persistent id.
struct TorchStorage {
    let key: String
    let type: TorchStorageType
    /// Where its bytes are in the checkpoint file (exactly numel × element size of them).
    let bytes: Range<Int>
}

/// A tensor: a strided view of a storage, as `_rebuild_tensor_v2` makes it.
struct TorchTensorView {
    let dtype: SafeTensorsDType
    let storage: Int
    /// Offset of element [0, 0, …] in the storage, in elements.
    let offset: Int
    let shape: [Int]
    /// Element strides; non-negative, may be zero (an expanded view).
    let strides: [Int]
    let elementCount: Int

    /// True when the elements are stored in C order with no gaps (dims of size 1 have any stride).
    var isContiguous: Bool {
        var expected = 1
        for d in shape.indices.reversed() where shape[d] != 1 {
            if strides[d] != expected { return false }
            expected *= shape[d]
        }
        return true
    }
}
