/// A failed DCMTK call: DCMTK's module and code (its `OFCondition`) and its text.
public struct DCMTKError: Error, Hashable, Sendable, CustomStringConvertible {
    public var module: UInt16
    public var code: UInt16
    public var text: String

    public init(module: UInt16, code: UInt16, text: String) {
        self.module = module
        self.code = code
        self.text = text
    }

    /// The shim's own failures use module 0xFFFF.
    public static let shimModule: UInt16 = 0xFFFF

    public var description: String { "DCMTK \(module)/\(code): \(text)" }
}
