import Crypto
import Foundation
import SwiftASN1
import Synchronization
import X509

#if canImport(Glibc)
    import Glibc
#endif

/// A local certificate authority: its certificate and signing key, and the leaf certificates
/// it issues for intercepted hosts. Pure: time is passed in, nothing touches the disk.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    let key: Certificate.PrivateKey

    /// A new CA valid for ten years from `now`.
    public static func create(now: Date, commonName: String = "driftcheck local CA") throws -> CertificateAuthority {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("driftcheck")
            CommonName(commonName)
        }
        let identifier = SubjectKeyIdentifier(hash: key.publicKey)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
            identifier
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: key)
        return CertificateAuthority(certificate: certificate, key: key)
    }

    /// The CA as stored: a PEM certificate and a PEM private key (PKCS#8).
    public init(certificatePEM: String, keyPEM: String) throws(CAError) {
        do {
            certificate = try Certificate(pemEncoded: certificatePEM)
        } catch {
            throw .invalid("the certificate is not a PEM X.509 certificate (\(error))")
        }
        do {
            key = try Certificate.PrivateKey(pemEncoded: keyPEM)
        } catch {
            throw .invalid("the key is not a PEM private key (\(error))")
        }
        guard key.publicKey == certificate.publicKey else {
            throw .invalid("the key does not belong to the certificate")
        }
        guard let constraints = try? certificate.extensions.basicConstraints,
            case .isCertificateAuthority = constraints
        else {
            throw .invalid("the certificate is not a CA certificate")
        }
    }

    init(certificate: Certificate, key: Certificate.PrivateKey) {
        self.certificate = certificate
        self.key = key
    }

    public var certificatePEM: String {
        // Serializing a certificate this type made or parsed cannot fail.
        (try? certificate.serializeAsPEM().pemString) ?? ""
    }

    public var keyPEM: String { (try? key.serializeAsPEM().pemString) ?? "" }

    /// A leaf certificate for `hosts` (DNS names or IP literals; the first is its common name)
    /// with `publicKey`, valid from an hour before `now` (clock skew) for `days`.
    public func issue(
        for hosts: [String], publicKey: Certificate.PublicKey, now: Date, days: Int = 30
    ) throws -> Certificate {
        let subject = try DistinguishedName {
            OrganizationName("driftcheck interception")
            CommonName(hosts.first ?? "driftcheck")
        }
        let names = hosts.map { host -> GeneralName in
            if let address = Self.ipAddressBytes(host) {
                return .ipAddress(ASN1OctetString(contentBytes: address[...]))
            }
            return .dnsName(host)
        }
        let authorityIdentifier = try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
            SubjectKeyIdentifier(hash: publicKey)
            AuthorityKeyIdentifier(keyIdentifier: authorityIdentifier)
        }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(days) * 86400),
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: key)
    }

    /// The 4 or 16 bytes of an IP literal (brackets allowed), nil for a DNS name.
    static func ipAddressBytes(_ host: String) -> [UInt8]? {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, bare, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

/// A leaf certificate and its key, as PEM, ready for a TLS server.
public struct LeafCredentials: Sendable {
    /// The leaf followed by the CA certificate.
    public var certificateChainPEM: [String]
    public var privateKeyPEM: String
}

/// Issues leaf certificates for intercepted hosts: one key for the whole run, one certificate
/// per host, minted on first use and kept.
public final class LeafIssuer: Sendable {
    private let authority: CertificateAuthority
    private let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
    private let clock: @Sendable () -> Date
    private let issued = Mutex<[String: LeafCredentials]>([:])

    public init(authority: CertificateAuthority, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.authority = authority
        self.clock = clock
    }

    /// The credentials for `host` (and any `more` names the same certificate must cover),
    /// minted on first use.
    public func credentials(for host: String, more: [String] = []) throws -> LeafCredentials {
        let hosts = [host.lowercased()] + more.map { $0.lowercased() }.filter { $0 != host.lowercased() }
        let name = hosts.joined(separator: " ")
        if let known = issued.withLock({ $0[name] }) { return known }
        let certificate = try authority.issue(for: hosts, publicKey: key.publicKey, now: clock())
        let credentials = LeafCredentials(
            certificateChainPEM: [try certificate.serializeAsPEM().pemString, authority.certificatePEM],
            privateKeyPEM: try key.serializeAsPEM().pemString)
        return issued.withLock { issued in
            if let raced = issued[name] { return raced }
            issued[name] = credentials
            return credentials
        }
    }
}

/// Why the CA cannot be used: one line naming the file and the problem.
public enum CAError: Error, CustomStringConvertible, Equatable {
    /// No CA in the directory yet.
    case missing(directory: String)
    /// `ca init` found one already.
    case exists(directory: String)
    /// The key file can be read by others than its owner.
    case exposedKey(path: String, mode: String)
    case unreadable(path: String, reason: String)
    case invalid(String)
    case invalidFile(path: String, reason: String)
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let directory):
            return "\(directory): no driftcheck CA here (run 'driftcheck ca init', or pass --ca-dir)"
        case .exists(let directory):
            return
                "\(directory): a driftcheck CA exists already (--force replaces it; clients must then trust the new one)"
        case .exposedKey(let path, let mode):
            return "\(path): the CA key is readable by others (mode \(mode)); run 'chmod 600 \(path)'"
        case .unreadable(let path, let reason): return "\(path): cannot read (\(reason))"
        case .invalid(let reason): return reason
        case .invalidFile(let path, let reason): return "\(path): \(reason)"
        case .cannotWrite(let path, let reason): return "\(path): cannot write (\(reason))"
        }
    }
}
