/// The initial root of trust for Sigstore's public-good TUF repository (https://tuf-repo-cdn.sigstore.dev): version
/// 16 of its `root.json`, public trust-anchor data like a CA bundle. Taken from sigstore/root-signing,
/// `metadata/root_history/16.root.json` (commit 00346816fb2d2e2fd8d8301d99489a521c2c9260), re-serialized without
/// whitespace (its signed part, which is what TUF signs, is unchanged: the signature by key e71a54d5… verifies over
/// its canonical JSON, `TUFTests`). A TUF client trusts it as given and follows the repository's root chain from it
/// (versions 17, 18, … each signed by the previous root's keys); `BPFMAN_TUF_ROOT` names another initial root.
package enum SigstorePublicGood {
    package static let repository = "https://tuf-repo-cdn.sigstore.dev"

    package static let initialRoot = #"""
        {"signatures":[{"keyid":"e71a54d543835ba86adad9460379c7641fb8726d164ea766801a1c522aba7ea2","sig":"30\#
        45022065c68f28ebe44d0a4e047a6e287f9669c8e3b31e08536396c67a1483326be8c6022100e7524a889e40de0df84231dd\#
        40e1fcc57fbbbf62055c17076568307dbc509046"},{"keyid":"22f4caec6d8e6f9555af66b3d4c3cb06a3bb23fdc7e39c9\#
        16c61f462e6f52b06","sig":""},{"keyid":"61643838125b440b40db6942f5cb5a31c0dc04368316eb2aaa58b95904a58\#
        222","sig":""},{"keyid":"a687e5bf4fab82b0ee58d46e05c9535145a2c9afb458f43d42b45ca0fdce2a70","sig":""}\#
        ,{"keyid":"183e64f37670dc13ca0d28995a3053f3740954ddce44321a41e46534cf44e632","sig":""}],"signed":{"_\#
        type":"root","consistent_snapshot":true,"expires":"2027-04-22T19:27:31Z","keys":{"0c87432c3bf09fd991\#
        89fdc32fa5eaedf4e4a5fac7bab73fa04a2e0fc64af6f5":{"keyid_hash_algorithms":["sha256","sha512"],"keytyp\#
        e":"ecdsa","keyval":{"public":"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWRiGr\#
        5+j+3J5SsH+Ztr5nE2H2wO7\nBV+nO3s93gLca18qTOzHY1oWyAGDykMSsGTUBSt9D+An0KfKsD2mfSM42Q==\n-----END PUBL\#
        IC KEY-----\n"},"scheme":"ecdsa-sha2-nistp256","x-tuf-on-ci-online-uri":"gcpkms:projects/sigstore-ro\#
        ot-signing/locations/global/keyRings/root/cryptoKeys/timestamp/cryptoKeyVersions/1"},"183e64f37670dc\#
        13ca0d28995a3053f3740954ddce44321a41e46534cf44e632":{"keytype":"ecdsa","keyval":{"public":"-----BEGI\#
        N PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMxpPOJCIZ5otG4106fGJseEQi3V9\npkMYQ4uyV9Tj1M7\#
        WHXIyLG+jkfvuG0glQ1JZbRZZBV3gAR4sojdGHISeow==\n-----END PUBLIC KEY-----\n"},"scheme":"ecdsa-sha2-nis\#
        tp256","x-tuf-on-ci-keyowner":"@lance"},"22f4caec6d8e6f9555af66b3d4c3cb06a3bb23fdc7e39c916c61f462e6f\#
        52b06":{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ecdsa","keyval":{"public":"-----BEGIN\#
         PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzBzVOmHCPojMVLSI364WiiV8NPrD\n6IgRxVliskz/v+y3\#
        JER5mcVGcONliDcWMC5J2lfHmjPNPhb4H7xm8LzfSA==\n-----END PUBLIC KEY-----\n"},"scheme":"ecdsa-sha2-nist\#
        p256","x-tuf-on-ci-keyowner":"@santiagotorres"},"61643838125b440b40db6942f5cb5a31c0dc04368316eb2aaa5\#
        8b95904a58222":{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ecdsa","keyval":{"public":"--\#
        ---BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEinikSsAQmYkNeH5eYq/CnIzLaacO\nxlSaawQD\#
        OwqKy/tCqxq5xxPSJc21K4WIhs9GyOkKfzueY3GILzcMJZ4cWw==\n-----END PUBLIC KEY-----\n"},"scheme":"ecdsa-s\#
        ha2-nistp256","x-tuf-on-ci-keyowner":"@bobcallaway"},"a687e5bf4fab82b0ee58d46e05c9535145a2c9afb458f4\#
        3d42b45ca0fdce2a70":{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ecdsa","keyval":{"public\#
        ":"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0ghrh92Lw1Yr3idGV5WqCtMDB8Cx\n+D8\#
        hdC4w2ZLNIplVRoVGLskYa3gheMyOjiJ8kPi15aQ2//7P+oj7UvJPGw==\n-----END PUBLIC KEY-----\n"},"scheme":"ec\#
        dsa-sha2-nistp256","x-tuf-on-ci-keyowner":"@joshuagl"},"e71a54d543835ba86adad9460379c7641fb8726d164e\#
        a766801a1c522aba7ea2":{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ecdsa","keyval":{"publ\#
        ic":"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEXsz3SZXFb8jMV42j6pJlyjbjR8K\nN\#
        3Bwocexq6LMIb5qsWKOQvLN16NUefLc4HswOoumRsVVaajSpQS6fobkRw==\n-----END PUBLIC KEY-----\n"},"scheme":"\#
        ecdsa-sha2-nistp256","x-tuf-on-ci-keyowner":"@mnm678"}},"roles":{"root":{"keyids":["e71a54d543835ba8\#
        6adad9460379c7641fb8726d164ea766801a1c522aba7ea2","22f4caec6d8e6f9555af66b3d4c3cb06a3bb23fdc7e39c916\#
        c61f462e6f52b06","61643838125b440b40db6942f5cb5a31c0dc04368316eb2aaa58b95904a58222","a687e5bf4fab82b\#
        0ee58d46e05c9535145a2c9afb458f43d42b45ca0fdce2a70","183e64f37670dc13ca0d28995a3053f3740954ddce44321a\#
        41e46534cf44e632"],"threshold":3},"snapshot":{"keyids":["0c87432c3bf09fd99189fdc32fa5eaedf4e4a5fac7b\#
        ab73fa04a2e0fc64af6f5"],"threshold":1,"x-tuf-on-ci-expiry-period":3650,"x-tuf-on-ci-signing-period":\#
        365},"targets":{"keyids":["e71a54d543835ba86adad9460379c7641fb8726d164ea766801a1c522aba7ea2","22f4ca\#
        ec6d8e6f9555af66b3d4c3cb06a3bb23fdc7e39c916c61f462e6f52b06","61643838125b440b40db6942f5cb5a31c0dc043\#
        68316eb2aaa58b95904a58222","a687e5bf4fab82b0ee58d46e05c9535145a2c9afb458f43d42b45ca0fdce2a70","183e6\#
        4f37670dc13ca0d28995a3053f3740954ddce44321a41e46534cf44e632"],"threshold":3},"timestamp":{"keyids":[\#
        "0c87432c3bf09fd99189fdc32fa5eaedf4e4a5fac7bab73fa04a2e0fc64af6f5"],"threshold":1,"x-tuf-on-ci-expir\#
        y-period":7,"x-tuf-on-ci-signing-period":6}},"spec_version":"1.0","version":16,"x-tuf-on-ci-expiry-p\#
        eriod":197,"x-tuf-on-ci-signing-period":46}}
        """#
}
