"""The VQA networks: image features + LSTM question encoder -> reasoning -> softmax.

Three kinds (``NetworkConfig.model``, ``vqa train --model``):

* ``cnn-lstm``, the baseline: a globally pooled image vector and the question vector fused by
  an element-wise product. It keeps *what* is in the image and throws away *where*.
* ``attention``: the image stays a spatial feature map with two coordinate channels (by
  default where each cell's ink lies, finer than the cell: ``NetworkConfig.ink_xy``); the
  question guides ``hops`` rounds of attention over its cells (stacked attention, Yang et al.
  2016). Each hop conditions every cell on the current query (FiLM-style scale and shift,
  then ReLU), scores the cells from that, reads the softmax-weighted cell (what), its x, y
  (where) and the max- and mean-pooled conditioned cells (is there one, how many), and
  updates the query. From the second hop on, every cell also sees its offset and distance
  from where the previous hop looked, and the question sets a slope on that distance in the
  cell's score, so two hops answer "the object closest to the red one": the first finds the
  red object, the second scores the others by their distance to it. The first hop does the
  same from a point the question sets (``NetworkConfig.anchor``), so "the object closest to
  the top left corner" can be a slope on the distance from that corner.
* ``relation``: a relation module (Santoro et al. 2017) over every pair of cells of a small
  map (5x5 for 80x80 images and four CNN blocks), each cell with its mean colour and x, y;
  ``g`` sees (cell i, cell j, question), its first layer scaled and shifted by the question
  (FiLM), is summed over the pairs, and ``f`` (one dense layer) and the head answer.

In both spatial kinds the question vector holds the mean word embedding beside the LSTM
state, and it is batch-normalised: at the start the LSTM outputs
of "Is the red object on the left?" and "Is the blue object at the top?" differ by a small
fraction of their common part (std over questions 0.09 per feature after the layer
normalisation used before), so nothing question-specific reached the cells and training sat
on the question-only plateau (about 40% on the shapes set; position and colour at chance).

Inputs are a batch of *images* (or cached image features), a batch of questions and, for
each question, the index of its image in the image batch. The image branch runs once per
image and its output is gathered per question (``keras.ops.take``), so the many questions
of one image cost one CNN pass; likewise a question asked of several images in one batch is
encoded once (``DistinctRows``).
"""

from __future__ import annotations

from recognisers.backend import import_keras
from vqa.config import FEATURE_DIMS, EncoderConfig, NetworkConfig
from vqa.features import build_compact_cnn

ATTENTION_OUTPUT = "attention_maps"


def _gather_layer(name: str):
    import keras

    class GatherRows(keras.layers.Layer):
        """Row ``index[i]`` of ``table`` for every question ``i``."""

        def call(self, table, index):
            return keras.ops.take(table, keras.ops.cast(index, "int32"), axis=0)

        def compute_output_shape(self, table_shape, index_shape):
            return (index_shape[0], *table_shape[1:])

    return GatherRows(name=name)


def _distinct_rows_layer():
    import keras

    class DistinctRows(keras.layers.Layer):
        """The distinct rows of a token matrix, and for each row the index of its copy.

        Generated and templated sets ask the same question of many images (a training batch
        of the shapes set holds about 38 distinct questions in 128; the whole set 40), so
        the question encoder runs on the distinct ones and its output is gathered back per
        question: the same vectors and gradients, a third of the LSTM's work.
        """

        def call(self, rows):
            import tensorflow as tf

            distinct, copy = tf.raw_ops.UniqueV2(x=rows, axis=[0], out_idx=tf.int32)
            return distinct, copy

        def compute_output_spec(self, rows):
            return (
                keras.KerasTensor((None, rows.shape[1]), dtype=rows.dtype),
                keras.KerasTensor((rows.shape[0],), dtype="int32"),
            )

    return DistinctRows(name="distinct_questions")


def _coordinate_layer(ink: bool):
    import keras
    from keras import ops

    class CellsWithCoordinates(keras.layers.Layer):
        """(n, h, w, c) feature map and the (n, s, s, 3) pixels -> (n, h*w, c + 2) cells with
        their x, y, and the x, y alone (n, h*w, 2). A cell's x, y is its centre (the outer
        cells' at -1 and 1) or, with ``ink``, the centroid of its pixels' contrast with the
        image's border colour, in the same units: an empty cell keeps its centre. Why: a
        cell of an 8x8 map spans 8 pixels of a 64-pixel image, and the shapes set asks which
        object is nearest a corner by 3 pixels; from cell centres alone the two candidates
        are often the same distance away, and the position within the cell had to be learnt.
        """

        def call(self, fmap, images):
            h, w = fmap.shape[1], fmap.shape[2]
            ys, xs = ops.meshgrid(ops.linspace(-1.0, 1.0, h), ops.linspace(-1.0, 1.0, w), indexing="ij")
            coords = ops.broadcast_to(ops.stack([xs, ys], axis=-1)[None], (ops.shape(fmap)[0], h, w, 2))
            if ink:
                coords = _ink_centroids(ops.cast(images, "float32") / 255.0, coords)
            coords = ops.reshape(ops.cast(coords, fmap.dtype), (-1, h * w, 2))
            cells = ops.reshape(fmap, (-1, h * w, fmap.shape[3]))
            return ops.concatenate([cells, coords], axis=-1), coords

        def compute_output_shape(self, fmap_shape, images_shape):
            cells = fmap_shape[1] * fmap_shape[2]
            return (fmap_shape[0], cells, fmap_shape[3] + 2), (fmap_shape[0], cells, 2)

    return CellsWithCoordinates(name="cells_with_coordinates")


def _ink_centroids(pixels, centres):
    """Each cell's ink centroid: ``pixels`` (n, s, s, 3) in [0, 1], ``centres`` (n, h, w, 2)
    the cells' x, y; a pixel weighs its colour distance from the mean border colour."""
    from keras import ops

    n, s, h, w = ops.shape(pixels)[0], pixels.shape[1], centres.shape[1], centres.shape[2]
    k = s // h
    border = ops.concatenate([pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1]], axis=1)
    contrast = ops.sqrt(ops.sum(ops.square(pixels - ops.mean(border, axis=1)[:, None, None]), -1) + 1e-12)
    contrast = ops.reshape(contrast, (n, h, k, w, k))
    # a pixel's x, y in the cells' units: the cell centres' spacing is 2 / (cells - 1)
    along = (ops.arange(s, dtype="float32") + 0.5) / k - 0.5
    xs = ops.reshape(-1.0 + 2.0 * along / max(w - 1, 1), (1, 1, 1, w, k))
    ys = ops.reshape(-1.0 + 2.0 * along / max(h - 1, 1), (1, h, k, 1, 1))
    weight = ops.sum(contrast, axis=(2, 4))[..., None]
    moments = ops.stack([ops.sum(contrast * xs, axis=(2, 4)), ops.sum(contrast * ys, axis=(2, 4))], -1)
    empty = 0.5  # half a pixel of full contrast: a cell with less ink leans to its centre
    return (moments + empty * centres) / (weight + empty)


def _zero_column_after(x):
    """``x`` with a column of zeros after its last axis (x, y -> x, y, 0)."""
    from keras import ops

    return ops.pad(x, [(0, 0)] * (len(x.shape) - 1) + [(0, 1)])


FEW_IMAGES = 32  # at most this many images in a batch: reads by one matmul (_read_cells)


def _read_cells(weights, image_cells, index):
    """Each question's softmax-weighted sum of its own image's cells: ``(questions, width)``.

    With few images in the batch (a training batch holds 128 questions of a few images) it is
    one matmul with every image's cells, the weights zero outside the question's own image;
    gathering each question's cells instead, and scattering their gradient back, made the
    largest tensors of a shapes training step. The matmul's work grows with questions times
    images, so a batch of many images (1,024 questions in evaluation) gathers.
    """
    from keras import ops

    def over_every_image():
        own = ops.one_hot(index, ops.shape(image_cells)[0])[:, :, None] * weights[:, None, :]
        every_cell = ops.reshape(image_cells, (-1, image_cells.shape[-1]))
        return ops.matmul(ops.reshape(own, (ops.shape(weights)[0], -1)), every_cell)

    def gathered():
        return ops.einsum("qc,qcd->qd", weights, ops.take(image_cells, index, axis=0))

    return ops.cond(ops.shape(image_cells)[0] <= FEW_IMAGES, over_every_image, gathered)


def _attention_layer(hops: int, units: int, distance_score: bool, anchor: bool = False):
    import keras
    from keras import layers, ops

    class QuestionGuidedAttention(keras.layers.Layer):
        """``hops`` rounds of MLP-scored attention over the cells of each question's image.

        Inputs: cells per image ``(n_images, cells, units)``, their x, y ``(n_images, cells,
        2)``, the image of each question, the question vectors. Each hop conditions every
        cell on the current query (FiLM-style scale and shift, then ReLU) and scores it; it
        reads the softmax-weighted cell (what), the weighted x, y (where) and the max- and
        mean-pooled conditioned cells (is there one, how many). From the second hop on, each
        cell also sees its offset and distance from where the previous hop looked, so "the
        object closest to the red one" is a score on a distance the layer hands it rather
        than one to be learnt from coordinates. With ``distance_score`` the question also sets
        a slope on that distance, added straight to the cell's score: through the ReLU MLP
        alone, a score that falls with distance flattens beyond a learnt range, and a training
        run whose range came out short missed the closest object when it was far (a model with
        94.4% on closest questions read 76% of those whose answer lay 30 to 45 pixels away,
        while furthest, a score that rises with distance, read 99.97%). With ``anchor`` the
        first hop measures the same from a point the question sets (a ``Dense(2)`` of it): a
        model without it spread its attention over the whole map on "the object closest to the
        top left corner" (no cell above 0.2) and answered from the pooled cells, a ranking
        learnt through the MLP, and missed when the runner-up was 3 to 7 pixels further. (The
        shapes runs learnt a proxy with it, the object furthest from the opposite corner: the
        README's shapes section.)
        Returns every hop's reads beside the final query, and the maps ``(n, hops, cells)``.
        """

        def __init__(self, hops: int, units: int, distance_score: bool, anchor: bool = False, **kwargs):
            super().__init__(**kwargs)
            self.hops, self.units, self.distance_score, self.anchor = hops, units, distance_score, anchor
            dense = layers.Dense
            self.first = 0 if anchor else 1  # the first hop measuring distances from a point
            self.anchor_point = dense(2, name="anchor") if anchor else None
            self.cell_proj = [dense(units, name=f"cell{k}") for k in range(hops)]
            measured = range(self.first, hops)
            self.offset_proj = [dense(units, use_bias=False, name=f"offset{k}") for k in measured]
            slopes = measured if distance_score else ()
            self.slope = [dense(1, use_bias=False, name=f"slope{k}") for k in slopes]
            self.query_proj = [dense(units, use_bias=False, name=f"query{k}") for k in range(hops)]
            self.query_scale = [dense(units, use_bias=False, name=f"scale{k}") for k in range(hops)]
            self.score = [dense(1, name=f"score{k}") for k in range(hops)]
            self.update = [dense(units, activation="tanh", name=f"update{k}") for k in range(hops)]

        def call(self, image_cells, image_xy, index, query):
            index = ops.cast(index, "int32")
            xy = ops.take(image_xy, index, axis=0)
            maps, reads = [], []
            where = self.anchor_point(query) if self.anchor_point is not None else None
            for k in range(self.hops):
                # the cell half of the scoring MLP runs once per image, not once per question
                per_image = self.cell_proj[k](image_cells)
                shift = self.query_proj[k](query)
                scale = 1.0 + self.query_scale[k](query)
                slope, along = 0.0, None
                if where is not None:
                    # offset_proj([xy - where, distance]) by its linearity (no bias): the xy
                    # term runs per image, the where term joins the query's shift below and
                    # the distance term scales one row of the kernel
                    project = self.offset_proj[k - self.first]
                    per_image = per_image + project(_zero_column_after(image_xy))
                    shift = shift - project(_zero_column_after(where)) * scale
                    offset = xy - ops.expand_dims(where, 1)
                    distance = ops.sqrt(ops.sum(offset * offset, axis=-1, keepdims=True) + 1e-6)
                    unit_distance = project(ops.convert_to_tensor([[0.0, 0.0, 1.0]], where.dtype))
                    along = distance * ops.expand_dims(unit_distance, 1)
                    if self.distance_score:
                        slope = distance * ops.expand_dims(self.slope[k - self.first](query), 1)
                # FiLM-style: the query scales and shifts the cell's features, so what is
                # looked for (a colour, a place) selects cells from the first steps
                hidden = ops.take(per_image, index, axis=0)
                if along is not None:
                    hidden = hidden + along
                hidden = ops.relu(hidden * ops.expand_dims(scale, 1) + ops.expand_dims(shift, 1))
                weights = ops.softmax(ops.squeeze(self.score[k](hidden) + slope, -1), axis=-1)
                read = _read_cells(weights, image_cells, index)
                where = ops.einsum("qc,qcd->qd", weights, xy)
                # the conditioned cells pooled: a direct path from every cell to the answer
                # (soft counts, "is there a red one"), so learning need not wait for the
                # softmax to find the right cell first
                pooled = ops.concatenate([ops.max(hidden, axis=1), ops.mean(hidden, axis=1)], -1)
                reads += [read, where, pooled]
                query = query + self.update[k](ops.concatenate([query, read, where, pooled], -1))
                maps.append(weights)
            return ops.concatenate([query, *reads], -1), ops.stack(maps, axis=1)

        def compute_output_shape(self, image_cells_shape, image_xy_shape, index_shape, query_shape):
            width = self.units + self.hops * (3 * self.units + 2)
            return (query_shape[0], width), (query_shape[0], self.hops, image_cells_shape[1])

        def get_config(self):
            config = {
                "hops": self.hops,
                "units": self.units,
                "distance_score": self.distance_score,
                "anchor": self.anchor,
            }
            return {**super().get_config(), **config}

    return QuestionGuidedAttention(hops, units, distance_score, anchor, name="attention")


def _relation_layer(units: int):
    import keras
    from keras import layers, ops

    class QuestionConditionedRelations(keras.layers.Layer):
        """A relation module (Santoro et al. 2017) over every ordered pair of cells.

        ``g`` sees (cell i, cell j, question) and is summed over the pairs; its first layer
        is linear, so it splits into a per-image part for each cell (computed once per
        image) plus a per-question bias, and only the later layers run per pair and
        question. Returns the summed relations and, as the map of where it looked, each
        cell's share of the summed activations of the pairs it takes part in ``(n, 1, cells)``.
        """

        def __init__(self, units: int, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.first = layers.Dense(units, name="g_first")
            self.second = layers.Dense(units, use_bias=False, name="g_second")
            self.query = layers.Dense(units, use_bias=False, name="g_query")
            self.scale = layers.Dense(units, use_bias=False, name="g_scale")
            self.g = [layers.Dense(units, activation="relu", name=f"g{k}") for k in (1, 2)]

        def call(self, image_cells, index, query):
            index = ops.cast(index, "int32")
            first = ops.take(self.first(image_cells), index, axis=0)[:, :, None]
            second = ops.take(self.second(image_cells), index, axis=0)[:, None]
            scale = 1.0 + self.scale(query)[:, None, None]
            pairs = ops.relu((first + second) * scale + self.query(query)[:, None, None])
            for dense in self.g:
                pairs = dense(pairs)
            summed = ops.mean(pairs, axis=(1, 2))
            activity = ops.sum(pairs, axis=-1)
            activity = ops.sum(activity, axis=1) + ops.sum(activity, axis=2)
            share = activity / (ops.sum(activity, axis=-1, keepdims=True) + 1e-9)
            return summed, share[:, None]

        def compute_output_shape(self, image_cells_shape, index_shape, query_shape):
            return (query_shape[0], self.units), (query_shape[0], 1, image_cells_shape[1])

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return QuestionConditionedRelations(units, name="relations")


def build_vqa_model(
    encoder: EncoderConfig,
    config: NetworkConfig,
    vocabulary_size: int,
    max_length: int,
    n_answers: int,
    image_dtype: str = "uint8",
):
    """The whole trainable network (the compact CNN inside it; frozen VGG features come in).

    A spatial model has two outputs: the answers and the attention maps ``(n, hops, cells)``.
    ``image_dtype="float32"`` builds the same network taking float pixels, for gradients
    with respect to the image (saliency).
    """
    keras = import_keras()
    from keras import layers

    config.check(encoder)
    if encoder.frozen:
        images = keras.Input((FEATURE_DIMS[encoder.vgg_layer],), name="images")
        image_features = images
    else:
        images = keras.Input((encoder.side, encoder.side, 3), dtype=image_dtype, name="images")
        image_features = build_compact_cnn(encoder, not config.spatial, image_dtype)(images)
    questions = keras.Input((max_length,), dtype="int32", name="questions")
    image_index = keras.Input((), dtype="int32", name="image_index")

    if config.spatial:
        q = _question_vector(questions, config, vocabulary_size)
        x, maps = _attend(images, image_features, image_index, q, encoder, config)
    else:  # the baseline's layers are made in their original order (same seeded init)
        v = layers.Dense(config.hidden, activation="tanh", name="image_dense")(image_features)
        v = _gather_layer("gather_image_features")(v, image_index)
        q = _question_vector(questions, config, vocabulary_size)
        x = (
            layers.Multiply(name="fuse_product")([v, q])
            if config.fusion == "product"
            else layers.Concatenate(name="fuse_concat")([v, q])
        )
    if not config.spatial:  # a spatial model's reads are coordinates too: dropout blurs them
        x = layers.Dropout(config.dropout)(x)
    x = layers.Dense(config.hidden, activation="relu", name="head_dense")(x)
    if not config.spatial:
        x = layers.Dropout(config.dropout)(x)
    answers = layers.Dense(n_answers, activation="softmax", name="answers")(x)
    outputs = [answers, layers.Identity(name=ATTENTION_OUTPUT)(maps)] if config.spatial else answers
    return keras.Model([images, questions, image_index], outputs, name="vqa")


def _question_vector(questions, config: NetworkConfig, vocabulary_size: int):
    """Embedding -> LSTM(s) -> dense: the question as one vector of ``hidden`` values.

    A spatial model also takes the mean of the word embeddings beside the LSTM state: which
    words the question holds ("red", "left") is then in the vector from the first step,
    before the LSTM has learnt to carry it to its last state. On a generated shapes set this
    took the attention model from 63% to 86% validation accuracy after five epochs.
    """
    from keras import layers

    distinct, copy = _distinct_rows_layer()(questions)
    q = layers.Embedding(vocabulary_size, config.embed_dim, mask_zero=True, name="embedding")(distinct)
    words = q
    for i, units in enumerate(config.lstm_units):
        last = i == len(config.lstm_units) - 1
        q = layers.LSTM(units, return_sequences=not last, name=f"lstm{i}")(q)
    if config.spatial:
        q = layers.Concatenate(name="question_state_and_words")(
            [q, layers.GlobalAveragePooling1D(name="words")(words)]
        )
        # what tells questions apart (which colour, which side) is a small part of the LSTM
        # output at first; normalising each feature over the batch makes it unit-sized
        q = layers.Dense(config.hidden, name="question_dense")(q)
        q = _gather_layer("gather_questions")(q, copy)
        return layers.BatchNormalization(momentum=0.9, name="question_norm")(q)
    q = layers.Dense(config.hidden, activation="tanh", name="question_dense")(q)
    return _gather_layer("gather_questions")(q, copy)


def _attend(images, feature_map, image_index, q, encoder: EncoderConfig, config: NetworkConfig):
    """Cells (CNN features, mean colour, coordinates) -> question-guided attention."""
    from keras import layers

    # each cell's mean colour beside the CNN features: colour is there from the first step
    side = feature_map.shape[1]  # cells per side
    pixels = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="cell_pixels_scale")(images)
    pixels = layers.AveragePooling2D(encoder.side // side, name="cell_pixels")(pixels)
    features = layers.Concatenate(name="cell_features")([feature_map, pixels])
    cells, xy = _coordinate_layer(config.ink_xy)(features, images)
    if config.model == "relation":
        x, maps = _relation_layer(config.relation_units)(cells, image_index, q)
        return layers.Dense(config.hidden, activation="relu", name="f_dense")(x), maps
    cells = layers.Dense(config.hidden, activation="relu", name="cell_dense")(cells)
    return _attention_layer(config.hops, config.hidden, config.distance_score, config.anchor)(
        cells, xy, image_index, q
    )


def answers_view(network):
    """The network with the answers as its only output (what training and answering use)."""
    import keras

    if len(network.outputs) == 1:
        return network
    return keras.Model(network.inputs, network.outputs[0], name="vqa_answers")
