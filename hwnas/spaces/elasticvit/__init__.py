"""ElasticViT (hybrid MobileNetV3-style conv stages + transformer stages).

    arch.py      ElasticViTArch and its codec for ElasticViT's 10-element list
    ops.py       its OpSpecs (nn-Meter hybrid-ViT keys)
    blocks.py    the static torch modules behind the ops
    space.py     ElasticViTSpace (registered as "elasticvit"), the named subnets
    elastic.py   the elastic (weight-slicing) blocks of its supernet
    supernet.py  ElasticViTSupernet
"""
