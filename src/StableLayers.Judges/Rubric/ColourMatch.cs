namespace StableLayers.Judges.Rubric;

/// <summary>Soft "same colour" test shared by the criteria that look for duplicated content.</summary>
internal static class ColourMatch
{
    /// <summary>Mean absolute RGB difference (in [0,1]) at which two colours stop counting as the same.</summary>
    public const float Tolerance = 0.1f;

    /// <summary>
    /// 1 for identical colours, falling linearly to 0 at a mean absolute difference of <see cref="Tolerance"/>:
    /// soft, so 8-bit rounding and slight colour shifts still count as a match while the score stays continuous.
    /// </summary>
    public static float Similarity(float r0, float g0, float b0, float r1, float g1, float b1)
    {
        float d = (MathF.Abs(r0 - r1) + MathF.Abs(g0 - g1) + MathF.Abs(b0 - b1)) * (1f / 3f);
        return MathF.Max(0f, 1f - (d / Tolerance));
    }
}
