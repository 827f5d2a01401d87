#include "records.h"

namespace fh {

const KindDesc& kind_desc(Kind kind) noexcept { return gen::kKinds[kind]; }

}  // namespace fh
